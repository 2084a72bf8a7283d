function changeEmail(email, newEmail, verified, callback) {
  const mysql = require('mysql');

  const connection = mysql.createConnection(configuration.DB_URL);

  connection.connect();

  const query = 'UPDATE users SET email = ?, email_verified = ? WHERE email = ?';

  connection.query(query, [newEmail, verified, email], function (err, result) {
    connection.end();
    if (err) return callback(err);
    callback(null, result.affectedRows > 0);
  });
}
