function create(user, callback) {
  const mysql = require('mysql');
  const bcrypt = require('bcrypt');

  const connection = mysql.createConnection(configuration.DB_URL);

  connection.connect();

  bcrypt.hash(user.password, 10, function (err, hash) {
    if (err) {
      connection.end();
      return callback(err);
    }

    const insert = {
      email: user.email,
      nickname: user.username || user.email.split('@')[0],
      password: hash
    };

    connection.query('INSERT INTO users SET ?', insert, function (err) {
      connection.end();
      if (err && err.code === 'ER_DUP_ENTRY') {
        return callback(new ValidationError('user_exists', 'the user already exists'));
      }
      callback(err || null);
    });
  });
}
