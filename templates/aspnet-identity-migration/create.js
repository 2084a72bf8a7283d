function create(user, callback) {
  // Used only with import_mode off: new users are written to the legacy table with bcrypt.
  const sqlite3 = require('sqlite3');
  const bcrypt = require('bcrypt');
  const crypto = require('crypto');

  bcrypt.hash(user.password, 10, function (err, hash) {
    if (err) return callback(err);

    const db = new sqlite3.Database(configuration.DB_FILE);
    const userName = user.username || user.email;
    const query = 'INSERT INTO AspNetUsers (Id, UserName, NormalizedUserName, Email, NormalizedEmail, EmailConfirmed, PasswordHash) VALUES (?, ?, ?, ?, ?, 0, ?)';

    db.run(query, [crypto.randomUUID(), userName, userName.toUpperCase(), user.email, user.email.toUpperCase(), hash], function (err) {
      db.close();
      if (err && err.code === 'SQLITE_CONSTRAINT') {
        return callback(new ValidationError('user_exists', 'the user already exists'));
      }
      return callback(err || null);
    });
  });
}
