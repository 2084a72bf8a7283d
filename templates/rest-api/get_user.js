async function getUserAsync(email, callback) {
  const axios = require('axios');

  try {
    const response = await axios.get(configuration.API_URL + '/users-by-email/' + encodeURIComponent(email), {
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
    // No such user: call back with no profile.
    if (err.response && err.response.status === 404) return callback(null);
    return callback(new Error('the user service failed: ' + err.message));
  }
}
