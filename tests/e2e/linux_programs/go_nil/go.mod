module gonil

go 1.19
