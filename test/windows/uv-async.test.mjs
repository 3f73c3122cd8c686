/**
 * test/driver/uv-async.test.mjs under node.exe: the uv_async_t guest mode's helper thread wakes
 * Node's main thread with, on libuv's Windows loop.
 */
import "../driver/uv-async.test.mjs";
