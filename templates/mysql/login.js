function login(email, password, callback) {
  const mysql = require('mysql');
  const bcrypt = require('bcrypt');

  // A URL or { host, user, password, database }, as mysqljs accepts.
  const connection = mysql.createConnection(configuration.DB_URL);

  connection.connect();

  const query = 'SELECT id, nickname, email, email_verified, password FROM users WHERE email = ?';

  connection.query(query, [email], function (err, results) {
    connection.end();
    if (err) return callback(err);
    if (results.length === 0) return callback(new WrongUsernameOrPasswordError(email));
    const user = results[0];

    bcrypt.compare(password, user.password, function (err, isValid) {
      if (err || !isValid) return callback(err || new WrongUsernameOrPasswordError(email));

      callback(null, {
        user_id: user.id.toString(),
        nickname: user.nickname,
        email: user.email,
        email_verified: user.email_verified === 1
      });
    });
  });
}
