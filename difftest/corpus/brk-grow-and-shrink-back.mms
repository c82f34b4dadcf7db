b = brk 0
brk $b+4p
write $b+3p 1 0x1
brk $b
read $b+3p 1               => SIGSEGV/SEGV_MAPERR
maps
