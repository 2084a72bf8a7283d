function verify(email, callback) {
  const mysql = require('mysql');

  const connection = mysql.createConnection(configuration.DB_URL);

  connection.connect();

  const query = 'UPDATE users SET email_verified = true WHERE email_verified = false AND email = ?';

  connection.query(query, [email], function (err, result) {
    connection.end();
    if (err) return callback(err);
    // An UPDATE answers with an OkPacket: test the rows it changed. (Auth0's template tests
    // `results.length`, which an OkPacket does not have, so it never reports success.)
    callback(null, result.changedRows > 0);
  });
}
