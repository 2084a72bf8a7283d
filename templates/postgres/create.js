function create(user, callback) {
  const bcrypt = require('bcrypt');
  const postgres = require('pg');

  postgres.connect(configuration.DB_URL, function (err, client, done) {
    if (err) return callback(err);

    bcrypt.hash(user.password, 10, function (err, hashedPassword) {
      if (err) {
        done();
        return callback(err);
      }

      const query = 'INSERT INTO users (email, nickname, password) VALUES ($1, $2, $3)';
      const nickname = user.username || user.email.split('@')[0];
      client.query(query, [user.email, nickname, hashedPassword], function (err) {
        done();
        // 23505 is PostgreSQL's unique_violation.
        if (err && err.code === '23505') {
          return callback(new ValidationError('user_exists', 'the user already exists'));
        }
        return callback(err || null);
      });
    });
  });
}
