function getByEmail(email, callback) {
  // In import mode this answers "does the user exist in the legacy database?" during sign-up
  // and password reset, before the user has migrated.
  const sqlite3 = require('sqlite3');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'SELECT Id, UserName, Email, EmailConfirmed FROM AspNetUsers WHERE NormalizedEmail = ?';

  db.get(query, [email.toUpperCase()], function (err, user) {
    db.close();
    if (err) return callback(err);
    if (!user) return callback(null);

    return callback(null, {
      user_id: user.Id,
      username: user.UserName,
      email: user.Email,
      email_verified: user.EmailConfirmed === 1
    });
  });
}
