function loginByEmail(email, callback) {
  const postgres = require('pg');

  postgres.connect(configuration.DB_URL, function (err, client, done) {
    if (err) return callback(err);

    const query = 'SELECT id, nickname, email, email_verified FROM users WHERE email = $1';
    client.query(query, [email], function (err, result) {
      done();

      if (err) return callback(err);
      // No such user: call back with no profile.
      if (result.rows.length === 0) return callback(null);

      const user = result.rows[0];

      return callback(null, {
        user_id: user.id.toString(),
        nickname: user.nickname,
        email: user.email,
        email_verified: user.email_verified
      });
    });
  });
}
