function login(email, password, callback) {
  // node-postgres's legacy pooled API, as Auth0's PostgreSQL template uses it.
  const bcrypt = require('bcrypt');
  const postgres = require('pg');

  postgres.connect(configuration.DB_URL, function (err, client, done) {
    if (err) return callback(err);

    const query = 'SELECT id, nickname, email, email_verified, password FROM users WHERE email = $1';
    client.query(query, [email], function (err, result) {
      // Always call `done()` to hand the connection back to the pool.
      done();

      if (err) return callback(err);
      if (result.rows.length === 0) return callback(new WrongUsernameOrPasswordError(email));

      const user = result.rows[0];

      bcrypt.compare(password, user.password, function (err, isValid) {
        if (err || !isValid) return callback(err || new WrongUsernameOrPasswordError(email));

        return callback(null, {
          user_id: user.id.toString(),
          nickname: user.nickname,
          email: user.email,
          email_verified: user.email_verified
        });
      });
    });
  });
}
