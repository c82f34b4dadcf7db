b = brk 0
setrlimit data 0
brk $b+16p
brk 0
