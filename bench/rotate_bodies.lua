-- wrk script: every request posts the next precomputed signed body, so each one is a new event
-- with a valid signature. Each wrk thread reads its own file, "<path>.<thread id>", one request a
-- line: "<X-Hub-Signature-256 value>\t<body>". Optional second argument: milliseconds each
-- connection waits between requests (to hold a steady load below the maximum).
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  file = assert(io.open(args[1] .. "." .. id, "r"))
  pause_ms = tonumber(args[2] or "0")
end

function request()
  local line = file:read("*l")
  if not line then
    file:seek("set", 0)
    line = file:read("*l")
  end
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", "/webhook/whatsapp", {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = line:sub(1, tab - 1),
  }, line:sub(tab + 1))
end

function delay()
  return pause_ms
end
