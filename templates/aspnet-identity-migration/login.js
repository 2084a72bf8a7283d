function login(email, password, callback) {
  // Lazy migration off ASP.NET Identity: verify the legacy PBKDF2 hash (Identity v2 and v3
  // formats), rehash the password with bcrypt in the legacy table, and hand the profile over.
  // With import_mode on, customdb stores the user after this first successful login and never
  // calls this script for them again.
  const sqlite3 = require('sqlite3');
  const crypto = require('crypto');
  const bcrypt = require('bcrypt');

  const db = new sqlite3.Database(configuration.DB_FILE);
  const query = 'SELECT Id, UserName, Email, EmailConfirmed, PasswordHash FROM AspNetUsers WHERE NormalizedEmail = ?';

  db.get(query, [email.toUpperCase()], function (err, user) {
    if (err || !user || !user.PasswordHash) {
      db.close();
      return callback(err || new WrongUsernameOrPasswordError(email));
    }

    verifyPassword(password, user.PasswordHash, function (err, isValid, isLegacy) {
      if (err || !isValid) {
        db.close();
        return callback(err || new WrongUsernameOrPasswordError(email));
      }

      const profile = {
        user_id: user.Id,
        username: user.UserName,
        email: user.Email,
        email_verified: user.EmailConfirmed === 1
      };
      if (!isLegacy) {
        db.close();
        return callback(null, profile);
      }

      bcrypt.hash(password, 10, function (err, hash) {
        if (err) {
          db.close();
          return callback(err);
        }
        db.run('UPDATE AspNetUsers SET PasswordHash = ? WHERE Id = ?', [hash, user.Id], function (err) {
          db.close();
          // The login itself succeeded; a failed rehash is retried at the next login.
          if (err) console.warn('could not rehash the password of ' + user.Id + ': ' + err.message);
          return callback(null, profile);
        });
      });
    });
  });

  // ASP.NET Identity password hashes:
  //   v2: base64(0x00 | salt[16] | PBKDF2-HMAC-SHA1(1000 iterations)[32])
  //   v3: base64(0x01 | prf u32 | iterations u32 | salt length u32 | salt | subkey), all big-endian,
  //       prf 0 = HMAC-SHA1, 1 = HMAC-SHA256, 2 = HMAC-SHA512
  // Hashes already migrated to bcrypt start with "$2".
  function verifyPassword(password, stored, done) {
    if (stored.startsWith('$2')) {
      return bcrypt.compare(password, stored, function (err, ok) { done(err, ok, false); });
    }
    const bytes = Buffer.from(stored, 'base64');
    let digest, iterations, salt, subkey;
    if (bytes[0] === 0x00 && bytes.length === 49) {
      digest = 'sha1';
      iterations = 1000;
      salt = bytes.subarray(1, 17);
      subkey = bytes.subarray(17);
    } else if (bytes[0] === 0x01 && bytes.length > 13) {
      const saltLength = bytes.readUInt32BE(9);
      digest = ['sha1', 'sha256', 'sha512'][bytes.readUInt32BE(1)];
      iterations = bytes.readUInt32BE(5);
      salt = bytes.subarray(13, 13 + saltLength);
      subkey = bytes.subarray(13 + saltLength);
      if (!digest || salt.length !== saltLength || subkey.length < 16) {
        return done(new Error('unrecognised password hash format'));
      }
    } else {
      return done(new Error('unrecognised password hash format'));
    }
    crypto.pbkdf2(password, salt, iterations, subkey.length, digest, function (err, derived) {
      if (err) return done(err);
      done(null, crypto.timingSafeEqual(derived, subkey), true);
    });
  }
}
