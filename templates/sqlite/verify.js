function verify(email, callback) {
  const sqlite3 = require('sqlite3');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'UPDATE users SET email_verified = 1 WHERE email_verified = 0 AND email = ?';

  db.run(query, [email], function (err) {
    db.close();
    // `this.changes` is the number of rows the statement changed.
    return callback(err, !err && this.changes > 0);
  });
}
