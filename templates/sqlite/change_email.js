function changeEmail(email, newEmail, verified, callback) {
  const sqlite3 = require('sqlite3');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'UPDATE users SET email = ?, email_verified = ? WHERE email = ?';

  db.run(query, [newEmail, verified ? 1 : 0, email], function (err) {
    db.close();
    return callback(err, !err && this.changes > 0);
  });
}
