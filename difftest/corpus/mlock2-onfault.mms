a = mmap 0 4p rw private|anonymous
mlock2 $a 4p onfault       => ok
mincore $a 4p
write $a+1p 1 0x1
smaps
