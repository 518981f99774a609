module goudp

go 1.19
