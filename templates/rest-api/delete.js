async function remove(id, callback) {
  const axios = require('axios');

  try {
    await axios.delete(configuration.API_URL + '/users/' + encodeURIComponent(id), {
      headers: { 'x-api-key': configuration.API_KEY },
      timeout: 10000
    });
    return callback(null);
  } catch (err) {
    // Already gone is what we wanted.
    if (err.response && err.response.status === 404) return callback(null);
    return callback(new Error('the user service failed: ' + err.message));
  }
}
