function getByEmail(email, callback) {
  const mysql = require('mysql');

  const connection = mysql.createConnection(configuration.DB_URL);

  connection.connect();

  const query = 'SELECT id, nickname, email, email_verified FROM users WHERE email = ?';

  connection.query(query, [email], function (err, results) {
    connection.end();
    if (err) return callback(err);
    // No such user: call back with no profile.
    if (results.length === 0) return callback(null);

    const user = results[0];
    callback(null, {
      user_id: user.id.toString(),
      nickname: user.nickname,
      email: user.email,
      email_verified: user.email_verified === 1
    });
  });
}
