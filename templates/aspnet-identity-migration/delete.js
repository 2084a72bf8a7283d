function remove(id, callback) {
  const sqlite3 = require('sqlite3');

  const db = new sqlite3.Database(configuration.DB_FILE);

  db.run('DELETE FROM AspNetUsers WHERE Id = ?', [id], function (err) {
    db.close();
    return callback(err || null);
  });
}
