function changePassword(email, newPassword, callback) {
  const bcrypt = require('bcrypt');
  const postgres = require('pg');

  postgres.connect(configuration.DB_URL, function (err, client, done) {
    if (err) return callback(err);

    bcrypt.hash(newPassword, 10, function (err, hash) {
      if (err) {
        done();
        return callback(err);
      }

      const query = 'UPDATE users SET password = $1 WHERE email = $2';
      client.query(query, [hash, email], function (err, result) {
        done();
        return callback(err, result && result.rowCount > 0);
      });
    });
  });
}
