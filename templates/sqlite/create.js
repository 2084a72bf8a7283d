function create(user, callback) {
  const sqlite3 = require('sqlite3');
  const bcrypt = require('bcrypt');

  bcrypt.hash(user.password, 10, function (err, hash) {
    if (err) return callback(err);

    const db = new sqlite3.Database(configuration.DB_FILE);
    const query = 'INSERT INTO users (email, nickname, password) VALUES (?, ?, ?)';
    const nickname = user.username || user.email.split('@')[0];

    db.run(query, [user.email, nickname, hash], function (err) {
      db.close();
      if (err && err.code === 'SQLITE_CONSTRAINT') {
        return callback(new ValidationError('user_exists', 'the user already exists'));
      }
      return callback(err || null);
    });
  });
}
