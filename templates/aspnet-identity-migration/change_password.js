function changePassword(email, newPassword, callback) {
  const sqlite3 = require('sqlite3');
  const bcrypt = require('bcrypt');

  bcrypt.hash(newPassword, 10, function (err, hash) {
    if (err) return callback(err);

    const db = new sqlite3.Database(configuration.DB_FILE);
    const query = 'UPDATE AspNetUsers SET PasswordHash = ? WHERE NormalizedEmail = ?';

    db.run(query, [hash, email.toUpperCase()], function (err) {
      db.close();
      return callback(err, !err && this.changes > 0);
    });
  });
}
