async function verify(email, callback) {
  const axios = require('axios');

  try {
    await axios.post(configuration.API_URL + '/users/verify', { email }, {
      headers: { 'x-api-key': configuration.API_KEY },
      timeout: 10000
    });
    return callback(null, true);
  } catch (err) {
    if (err.response && err.response.status === 404) return callback(null, false);
    return callback(new Error('the user service failed: ' + err.message));
  }
}
