a = mmap 0 64p rw private|anonymous
write $a+10p 3p 0x61
read $a+9p+4090 20
mincore $a 64p
