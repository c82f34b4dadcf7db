b = brk 0
setrlimit data 1p
brk $b+16p
brk 0
