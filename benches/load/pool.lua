-- A different bearer token on every request, from a pool minted beforehand (case 5: every
-- request is a cache miss and a full RS256 verify).
local report = dofile(os.getenv("BENCH_DIR") .. "/report.lua")
done = report.done

local tokens = {}
local i = 0

function init(args)
  for line in io.lines(os.getenv("TOKEN_POOL")) do
    tokens[#tokens + 1] = line
  end
end

function request()
  i = i % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
