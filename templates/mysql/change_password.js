function changePassword(email, newPassword, callback) {
  const mysql = require('mysql');
  const bcrypt = require('bcrypt');

  const connection = mysql.createConnection(configuration.DB_URL);

  connection.connect();

  bcrypt.hash(newPassword, 10, function (err, hash) {
    if (err) {
      connection.end();
      return callback(err);
    }

    const query = 'UPDATE users SET password = ? WHERE email = ?';

    connection.query(query, [hash, email], function (err, result) {
      connection.end();
      if (err) return callback(err);
      // affectedRows counts the matched user, even if the new hash happened to be equal.
      callback(null, result.affectedRows > 0);
    });
  });
}
