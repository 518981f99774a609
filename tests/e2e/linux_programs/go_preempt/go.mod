module gopreempt

go 1.19
