-- Same request every time (headers come from wrk -H).
local report = dofile(os.getenv("BENCH_DIR") .. "/report.lua")
done = report.done
