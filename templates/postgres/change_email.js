function changeEmail(email, newEmail, verified, callback) {
  const postgres = require('pg');

  postgres.connect(configuration.DB_URL, function (err, client, done) {
    if (err) return callback(err);

    const query = 'UPDATE users SET email = $1, email_verified = $2 WHERE email = $3';
    client.query(query, [newEmail, verified, email], function (err, result) {
      done();
      return callback(err, result && result.rowCount > 0);
    });
  });
}
