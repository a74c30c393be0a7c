package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local report = require("report")
wrk.method = "POST"
wrk.path = "/v1/sys/cairn/noop"
wrk.headers["X-Vault-Token"] = os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"plaintext":"' .. os.getenv("BENCH_PLAINTEXT") .. '"}'
done = report.done
