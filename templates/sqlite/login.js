function login(email, password, callback) {
  // An SQLite database in the connection's data folder, via node-sqlite3's API.
  const sqlite3 = require('sqlite3');
  const bcrypt = require('bcrypt');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'SELECT id, nickname, email, email_verified, password FROM users WHERE email = ?';

  db.get(query, [email], function (err, user) {
    db.close();
    if (err) return callback(err);
    if (!user) return callback(new WrongUsernameOrPasswordError(email));

    bcrypt.compare(password, user.password, function (err, isValid) {
      if (err || !isValid) return callback(err || new WrongUsernameOrPasswordError(email));

      return callback(null, {
        user_id: user.id.toString(),
        nickname: user.nickname,
        email: user.email,
        email_verified: user.email_verified === 1
      });
    });
  });
}
