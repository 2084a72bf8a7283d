function changeEmail(email, newEmail, verified, callback) {
  const sqlite3 = require('sqlite3');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'UPDATE AspNetUsers SET Email = ?, NormalizedEmail = ?, EmailConfirmed = ? WHERE NormalizedEmail = ?';

  db.run(query, [newEmail, newEmail.toUpperCase(), verified ? 1 : 0, email.toUpperCase()], function (err) {
    db.close();
    return callback(err, !err && this.changes > 0);
  });
}
