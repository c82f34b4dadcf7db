b = brk 0
c = brk 0
brk $c
