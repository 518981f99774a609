// A goroutine that spins without a function call (so without Go's
// cooperative preemption points) while main sleeps on one P: main wakes
// only if the runtime can preempt the spinner asynchronously, by sending
// its thread SIGURG with tgkill. On Linux main wakes after about 10 ms.
package main

import (
	"fmt"
	"runtime"
	"time"
)

func spin(n int64) int64 {
	var s int64
	for i := int64(0); i < n; i++ {
		s += i ^ (s >> 3)
	}
	return s
}

func main() {
	runtime.GOMAXPROCS(1)
	t0 := time.Now()
	go spin(4_000_000_000)
	time.Sleep(10 * time.Millisecond)
	fmt.Println("main woke after", time.Since(t0).Milliseconds(), "ms")
}
