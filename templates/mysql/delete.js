function remove(id, callback) {
  const mysql = require('mysql');

  const connection = mysql.createConnection(configuration.DB_URL);

  connection.connect();

  connection.query('DELETE FROM users WHERE id = ?', [id], function (err) {
    connection.end();
    callback(err || null);
  });
}
