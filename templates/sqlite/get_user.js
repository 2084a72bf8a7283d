function getByEmail(email, callback) {
  const sqlite3 = require('sqlite3');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'SELECT id, nickname, email, email_verified FROM users WHERE email = ?';

  db.get(query, [email], function (err, user) {
    db.close();
    if (err) return callback(err);
    // No such user: call back with no profile.
    if (!user) return callback(null);

    return callback(null, {
      user_id: user.id.toString(),
      nickname: user.nickname,
      email: user.email,
      email_verified: user.email_verified === 1
    });
  });
}
