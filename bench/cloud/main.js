// The Cloud Code of the bench's `cloud_function` scenario and of `create_message` with a
// trigger (bench/README.md "Cloud Code"): the same file runs on Parlor and on Parse Server.

// create_message: a beforeSave that validates and edits the message.
Parse.Cloud.beforeSave("Message", (request) => {
  const content = request.object.get("content");
  if (typeof content !== "string" || content.length === 0 || content.length > 4000) {
    throw new Parse.Error(Parse.Error.VALIDATION_ERROR, "content must be 1 to 4000 characters");
  }
  request.object.set("content", content.trim());
});

// cloud_function: one Parse.Query, with the caller's rights.
Parse.Cloud.define("latestMessage", async (request) => {
  const query = new Parse.Query("Message");
  query.equalTo("session", { __type: "Pointer", className: "ChatSession", objectId: request.params.sessionId });
  query.descending("createdAt");
  const message = await query.first({ sessionToken: request.user ? request.user.getSessionToken() : undefined });
  return message ? message.id : "none";
});
