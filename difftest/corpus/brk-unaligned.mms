b = brk 0
brk $b+100
write $b+100 1 0x1
brk $b+1p+1
maps
brk $b
