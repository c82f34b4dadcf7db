a = mmap 0 4p rw private|anonymous
write $a+1p 1 0x1
write $a+3p 1 0x1
mincore $a 4p
