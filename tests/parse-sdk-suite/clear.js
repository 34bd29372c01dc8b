// Replaces Parse-SDK-JS's integration/test/clear.js: the upstream one calls a `/clear` route
// of its test server; here the helper restarts Parlor on a fresh database.
module.exports = function () {
  return global.destroyAllDataPermanently();
};
