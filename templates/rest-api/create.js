async function create(user, callback) {
  const axios = require('axios');

  try {
    await axios.post(configuration.API_URL + '/users', {
      email: user.email,
      password: user.password,
      username: user.username
    }, {
      headers: { 'x-api-key': configuration.API_KEY },
      timeout: 10000
    });
    return callback(null);
  } catch (err) {
    if (err.response && err.response.status === 409) {
      return callback(new ValidationError('user_exists', 'the user already exists'));
    }
    return callback(new Error('the user service failed: ' + err.message));
  }
}
