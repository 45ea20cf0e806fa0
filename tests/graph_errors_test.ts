/** Meta's error answers into one typed error, classified by code first and HTTP status second. */

import assert from "node:assert/strict";
import {
  classifyGraphError,
  GRAPH_ERROR_CODES,
  GRAPH_ERROR_TITLES,
  GraphApiError,
  type GraphErrorCategory,
  readGraphError,
} from "../src/graph/errors.ts";

const CLASSIFICATION_CASES: [
  code: number | undefined,
  status: number | undefined,
  GraphErrorCategory,
][] = [
  [130429, 400, "throttled"],
  [130429, 429, "throttled"],
  [131056, 400, "throttled"],
  [131048, 400, "throttled"],
  [4, 400, "throttled"],
  [80007, 400, "throttled"],
  [1, 400, "transient"],
  [2, 503, "transient"],
  [131000, 500, "transient"],
  [131016, 500, "transient"],
  [131057, 500, "transient"],
  [133004, 503, "transient"],
  [131047, 400, "recipient"],
  [131026, 400, "recipient"],
  [131021, 400, "recipient"],
  [131049, 400, "policy"],
  [131050, 400, "policy"],
  [130472, 400, "policy"],
  [368, 403, "policy"],
  [190, 401, "auth"],
  [0, 401, "auth"],
  [3, 500, "auth"],
  [250, 403, "auth"],
  [100, 400, "invalid_request"],
  [131008, 400, "invalid_request"],
  [131009, 400, "invalid_request"],
  [132001, 404, "invalid_request"],
  [139002, 400, "invalid_request"],
  [999999, 400, "invalid_request"],
  [999999, 500, "transient"],
  [undefined, 429, "throttled"],
  [undefined, 401, "auth"],
  [undefined, 403, "auth"],
  [undefined, 404, "invalid_request"],
  [undefined, 408, "transient"],
  [undefined, 500, "transient"],
  [undefined, 502, "transient"],
  [undefined, undefined, "transient"],
];

Deno.test("classifyGraphError() reads Meta's code first and the HTTP status second", () => {
  for (const [code, status, expected] of CLASSIFICATION_CASES) {
    assert.equal(classifyGraphError(code, status), expected, `code ${code}, HTTP ${status}`);
  }
});

Deno.test("GraphApiError is retryable only when throttled or transient, unless told otherwise", () => {
  const retryable = (category: GraphErrorCategory): boolean =>
    new GraphApiError({ message: "x", category }).retryable;
  assert.equal(retryable("throttled"), true);
  assert.equal(retryable("transient"), true);
  for (
    const category of ["recipient", "policy", "auth", "invalid_request", "unknown_outcome"] as const
  ) {
    assert.equal(retryable(category), false, category);
  }
  assert.equal(
    new GraphApiError({ message: "x", category: "transient", retryable: false }).retryable,
    false,
  );
});

Deno.test("readGraphError() keeps every field of Meta's error body", () => {
  const body = JSON.stringify({
    error: {
      message: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
      type: "OAuthException",
      code: 131056,
      error_subcode: 2494055,
      error_data: { messaging_product: "whatsapp", details: "Too many messages to this user" },
      fbtrace_id: "Az8or2yhqkZfEZ-_4Qn_Bam",
    },
  });

  const error = readGraphError(400, body, 4000);

  assert.equal(error.category, "throttled");
  assert.equal(error.retryable, true);
  assert.equal(error.code, 131056);
  assert.equal(error.subcode, 2494055);
  assert.equal(error.type, "OAuthException");
  assert.equal(error.details, "Too many messages to this user");
  assert.equal(error.fbtraceId, "Az8or2yhqkZfEZ-_4Qn_Bam");
  assert.equal(error.httpStatus, 400);
  assert.equal(error.retryAfterMs, 4000);
  assert.equal(
    error.message,
    "Graph API answered HTTP 400 with error 131056 (throttled): Pair rate limit hit",
  );
});

Deno.test("readGraphError() still explains a body that is not Meta's JSON", () => {
  const html = readGraphError(502, "<html><body>Bad Gateway</body></html>");
  assert.equal(html.category, "transient");
  assert.equal(html.code, undefined);
  assert.equal(
    html.message,
    'Graph API answered HTTP 502 with a body that is not a Graph error: "<html><body>Bad Gateway</body></html>"',
  );

  const empty = readGraphError(503, "");
  assert.equal(empty.category, "transient");
  assert.equal(empty.message, "Graph API answered HTTP 503 with an empty body");

  const otherJson = readGraphError(400, JSON.stringify({ detail: "nope" }));
  assert.equal(otherJson.category, "invalid_request");
  assert.match(otherJson.message, /not a Graph error/);
});

Deno.test("readGraphError() drops fields of the wrong type instead of failing", () => {
  const error = readGraphError(
    400,
    JSON.stringify({ error: { code: "131047", message: "Re-engagement message", fbtrace_id: 7 } }),
  );
  assert.equal(error.code, undefined);
  assert.equal(error.fbtraceId, undefined);
  assert.equal(error.category, "invalid_request");
  assert.equal(error.message, "Graph API answered HTTP 400 with an error (invalid_request)");
});

Deno.test("readGraphError() never quotes Meta's message or details, which may hold the text sent", () => {
  const secret = "Meet me at 10, the code is 4711";
  for (const code of [131026, 131000, 123456]) {
    const error = readGraphError(
      400,
      JSON.stringify({
        error: {
          message: `(#${code}) Could not send "${secret}"`,
          code,
          error_data: { details: `The message "${secret}" failed` },
        },
      }),
    );
    assert.equal(error.message.includes(secret), false, error.message);
    assert.match(error.message, new RegExp(`^Graph API answered HTTP 400 with error ${code} `));
    assert.equal(error.details, `The message "${secret}" failed`);
  }
});

Deno.test("every code GRAPH_ERROR_CODES classifies has a title for error messages", () => {
  const missing = Object.values(GRAPH_ERROR_CODES).flat().filter((code) =>
    !GRAPH_ERROR_TITLES.has(code)
  );
  assert.deepEqual(missing, []);
});

Deno.test("readGraphError() takes a bare 504 as unknown_outcome: the server behind it may have sent", () => {
  const gateway = readGraphError(504, "<html>Gateway Timeout</html>");
  assert.equal(gateway.category, "unknown_outcome");
  assert.equal(gateway.retryable, false);
  const meta = readGraphError(504, JSON.stringify({ error: { code: 2, message: "Service" } }));
  assert.equal(meta.category, "transient", "Meta's own error body says it failed");
});
