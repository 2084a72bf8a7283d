async function changePassword(email, newPassword, callback) {
  const axios = require('axios');

  try {
    await axios.put(configuration.API_URL + '/users/password', { email, password: newPassword }, {
      headers: { 'x-api-key': configuration.API_KEY },
      timeout: 10000
    });
    return callback(null, true);
  } catch (err) {
    if (err.response && err.response.status === 404) return callback(null, false);
    return callback(new Error('the user service failed: ' + err.message));
  }
}
