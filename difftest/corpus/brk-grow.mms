b = brk 0
c = brk $b+2p              => ok
write $b 2p 0x31
read $b+1p 2
maps
