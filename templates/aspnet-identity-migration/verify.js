function verify(email, callback) {
  const sqlite3 = require('sqlite3');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'UPDATE AspNetUsers SET EmailConfirmed = 1 WHERE EmailConfirmed = 0 AND NormalizedEmail = ?';

  db.run(query, [email.toUpperCase()], function (err) {
    db.close();
    return callback(err, !err && this.changes > 0);
  });
}
