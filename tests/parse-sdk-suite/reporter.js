// Jasmine helper: counts specs by status and prints one summary line at the end, plus the
// names of the failed specs (with their first message) into $PARSE_SDK_SUITE_FAILURES.
const fs = require('fs');

const counts = { passed: 0, failed: 0, pending: 0, excluded: 0 };
const failures = [];

jasmine.getEnv().addReporter({
  specDone(result) {
    counts[result.status] = (counts[result.status] || 0) + 1;
    if (result.status === 'failed') {
      const message = (result.failedExpectations[0] || {}).message || '';
      failures.push(`${result.fullName}\n    ${message.split('\n')[0]}`);
    }
  },
  jasmineDone() {
    const total = counts.passed + counts.failed;
    console.log(
      `\nparse-sdk-suite: ${counts.passed} passed, ${counts.failed} failed of ${total} run ` +
        `(${counts.pending} pending, ${counts.excluded} excluded)`
    );
    if (process.env.PARSE_SDK_SUITE_FAILURES) {
      fs.writeFileSync(process.env.PARSE_SDK_SUITE_FAILURES, failures.join('\n') + '\n');
    }
  },
});
