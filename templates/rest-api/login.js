async function loginAsync(email, password, callback) {
  // Your user service's REST API, through axios (as in Auth0's Axios template).
  const axios = require('axios');

  try {
    const response = await axios.post(configuration.API_URL + '/login', { email, password }, {
      headers: { 'x-api-key': configuration.API_KEY },
      timeout: 10000
    });
    const user = response.data;
    return callback(null, {
      user_id: user.id.toString(),
      nickname: user.nickname,
      email: user.email,
      email_verified: !!user.email_verified
    });
  } catch (err) {
    if (err.response && (err.response.status === 401 || err.response.status === 404)) {
      return callback(new WrongUsernameOrPasswordError(email, 'Invalid credentials provided.'));
    }
    return callback(new Error('the user service failed: ' + err.message));
  }
}
