// Goroutines doing CPU work at once: Go runs them on as many OS threads
// as GOMAXPROCS (sched_getaffinity's CPUs) allows. Prints GOMAXPROCS and
// how many different threads the goroutines ran on.
package main

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
)

func main() {
	procs := runtime.GOMAXPROCS(0)
	var mu sync.Mutex
	tids := map[int]bool{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var s uint64
			for k := uint64(0); k < 20_000_000; k++ {
				s += k ^ (s >> 3)
			}
			mu.Lock()
			tids[syscall.Gettid()] = true
			mu.Unlock()
			_ = s
		}()
	}
	close(start)
	wg.Wait()
	fmt.Println("gomaxprocs", procs, "threads-used", len(tids))
}
