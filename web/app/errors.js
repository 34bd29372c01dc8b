// What to tell a person when the API refuses something: Parse error codes (and the
// server's own words where they are already clear) as short sentences.

export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** A sentence for an error from the API (an ApiError) or the network (anything else). */
export function describeError(error, action = '') {
  if (!(error instanceof ApiError)) {
    return 'The server cannot be reached. Check your connection; Parlor retries by itself.';
  }
  const message = error.message || '';
  switch (error.code) {
    case 100:
      return error.status === 429
        ? 'Too many attempts in a short time. Wait a minute, then try again.'
        : 'The server cannot be reached right now.';
    case 101:
      if (/locked/i.test(message)) return message;
      if (/username\/password/i.test(message)) return 'Wrong username or password.';
      return action ? `${action}: it does not exist, or you may not see it.` : 'Not found, or you may not see it.';
    case 119:
      return `You are not allowed to do that. ${message}`.trim();
    case 125:
      return 'That email address is not valid.';
    case 137:
      return message || 'That already exists.';
    case 141:
      return message || 'The server could not do that.';
    case 142:
      return message || 'Some of the values are not valid.';
    case 200:
      return 'Enter a username.';
    case 201:
      return 'Enter a password.';
    case 202:
      return 'That username is taken. Pick another one.';
    case 203:
      return 'That email address already has an account.';
    case 209:
      return 'Your session has ended. Please log in again.';
    case 111:
      return `A value has the wrong type: ${message}`;
    default:
      return message || `The server refused (code ${error.code}).`;
  }
}
