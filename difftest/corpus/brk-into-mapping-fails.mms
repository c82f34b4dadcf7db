b = brk 0
m = mmap $b+4p 1p r private|anonymous|fixed_noreplace
brk $b+8p
brk $b+2p
maps
munmap $m 1p
brk $b
