function verify(email, callback) {
  const postgres = require('pg');

  postgres.connect(configuration.DB_URL, function (err, client, done) {
    if (err) return callback(err);

    const query = 'UPDATE users SET email_verified = true WHERE email_verified = false AND email = $1';
    client.query(query, [email], function (err, result) {
      done();
      return callback(err, result && result.rowCount > 0);
    });
  });
}
