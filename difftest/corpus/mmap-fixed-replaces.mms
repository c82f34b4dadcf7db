# MAP_FIXED replaces what was there: the new page reads as zeros.
a = mmap 0 3p rw private|anonymous
write $a 3p 0x41
b = mmap $a+1p 1p r private|anonymous|fixed
read $b 2
read $a 2
read $a+2p 2
maps
