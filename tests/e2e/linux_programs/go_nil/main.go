// A Go program that dereferences nil: Go turns the SIGSEGV its handler
// receives into a panic, which it prints before exiting with status 2.
package main

import "fmt"

type T struct{ x int }

func main() {
	var p *T
	fmt.Println("about to dereference nil")
	fmt.Println(p.x)
}
